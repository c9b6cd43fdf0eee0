package quic

// SetAcceptHookForTest makes s's accept loops call f before each Accept.
func SetAcceptHookForTest(s *Server, f func()) { s.acceptHookForTest.Store(&f) }
