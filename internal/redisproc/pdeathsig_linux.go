package redisproc

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal makes the kernel kill the server if its parent dies
// without stopping it (a panic, a test timeout, a kill).
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
