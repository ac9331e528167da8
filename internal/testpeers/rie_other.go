//go:build !linux

package testpeers

import "syscall"

// rieSysProcAttr puts the emulator in its own process group (so cleanup can kill the group).
func rieSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
