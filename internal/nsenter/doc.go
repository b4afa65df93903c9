// Package nsenter runs a function inside a network namespace.
//
// A Go goroutine can move between OS threads, and a thread's network
// namespace is per thread, so Do locks the goroutine to its thread, switches
// the thread, runs the function and switches back. Sockets, AF_XDP sockets,
// netlink handles and XDP attachments created inside keep their namespace
// afterwards; goroutines started inside do not inherit it.
package nsenter
