//go:build !linux

package kubetest

import "syscall"

// sysProcAttr returns nil off Linux: there is no parent-death signal, so a
// test binary that dies without cleaning up leaves its children running.
func sysProcAttr() *syscall.SysProcAttr { return nil }
