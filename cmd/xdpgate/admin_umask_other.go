//go:build !unix

package main

// umask is a no-op where there is no umask; startAdmin chmods the socket.
func umask(m int) int { return 0 }
