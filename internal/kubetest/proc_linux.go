package kubetest

import "syscall"

// sysProcAttr puts each child in its own process group (so a terminal's
// Ctrl-C reaches only the test binary, which then stops the children in its
// cleanup) and asks the kernel to SIGKILL the child when the test binary
// dies without cleaning up: a panic, a -timeout expiry, a SIGKILL. This is
// what keeps a crashed test from leaving etcd and kube-apiserver running.
//
// Known limit: Linux delivers Pdeathsig when the thread that forked the child
// exits, not the process. The Go runtime keeps its threads for the life of the
// process unless a goroutine exits while locked to its thread
// (runtime.LockOSThread without Unlock); a test doing that on the goroutine
// that started the Env would kill the children early.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
