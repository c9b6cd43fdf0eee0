package core

// apart runs f on a goroutine of its own and waits for it. A connection's
// read loop lives as long as the connection, and most of that time it
// waits for the next message, holding its stack: work that needs a deep
// stack (a login, a media registration, a command's switchboard work and
// its log lines) would grow that stack for good, since a waiting reader
// uses too much of a grown stack for collections to shrink it. A goroutine
// that ends gives its stack back at once. The caller's state is f's while
// it runs: apart returns only after f did.
func apart(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}
