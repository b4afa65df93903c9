//go:build !unix

package admin

// umask is a no-op where there is no umask; Start chmods the socket.
func umask(m int) int { return 0 }
