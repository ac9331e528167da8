package testpeers

import "syscall"

// rieSysProcAttr puts the emulator in its own process group (so cleanup can kill the group) and has
// the kernel kill it if the test process dies first (a `go test -timeout` panic skips t.Cleanup).
func rieSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
