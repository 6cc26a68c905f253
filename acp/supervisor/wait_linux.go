package supervisor

import (
	"syscall"
	"unsafe"
)

// blockUntilExited waits until the process pid has exited, without reaping
// it (waitid with WNOWAIT, as os.Process does internally).
func blockUntilExited(pid int) {
	const pPID = 1 // P_PID
	var siginfo [128]byte
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
			uintptr(unsafe.Pointer(&siginfo[0])), syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		if errno != syscall.EINTR {
			return
		}
	}
}
