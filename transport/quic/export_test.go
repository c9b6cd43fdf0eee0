package quic

// SetAcceptHookForTest makes s's accept loops call f before each Accept.
func SetAcceptHookForTest(s *Server, f func()) { s.acceptHookForTest.Store(&f) }

// ReadBuffersForTest returns how many read buffers s's streams hold.
func ReadBuffersForTest(s *Server) int64 { return s.readBuffers.Load() }
