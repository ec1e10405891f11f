//go:build !linux

package redisproc

import "os/exec"

// setParentDeathSignal does nothing where the kernel has no parent death signal;
// Stop still ends the server.
func setParentDeathSignal(*exec.Cmd) {}
