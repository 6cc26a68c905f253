//go:build linux

package sandbox

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ipprotoMPTCP is IPPROTO_MPTCP. Landlock's TCP rules do not cover
// Multipath TCP sockets: an agent could connect anywhere with one. A
// seccomp filter refuses to create them, and programs fall back to TCP
// (EPROTONOSUPPORT is what a kernel without MPTCP answers).
const ipprotoMPTCP = 262

// denyMPTCP installs that filter on the calling thread (no_new_privs must
// be set). On architectures it does not know it does nothing and says so.
func denyMPTCP() error {
	var arch, socketNr uint32
	switch runtime.GOARCH {
	case "amd64":
		arch, socketNr = unix.AUDIT_ARCH_X86_64, unix.SYS_SOCKET
	case "arm64":
		arch, socketNr = unix.AUDIT_ARCH_AARCH64, unix.SYS_SOCKET
	default:
		return fmt.Errorf("no MPTCP filter for %s", runtime.GOARCH)
	}
	const (
		offNr   = 0
		offArch = 4
		offArg2 = 16 + 2*8 // args[2], its low 32 bits on a little-endian machine
	)
	ld := func(off uint32) unix.SockFilter {
		return unix.SockFilter{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: off}
	}
	jeq := func(k uint32, jt, jf uint8) unix.SockFilter {
		return unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: jt, Jf: jf, K: k}
	}
	ret := func(k uint32) unix.SockFilter { return unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: k} }
	jge := func(k uint32, jt, jf uint8) unix.SockFilter {
		return unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, Jt: jt, Jf: jf, K: k}
	}
	const x32 = 0x40000000 // x32 syscall numbers on x86_64: refused, as other ABIs are
	filter := []unix.SockFilter{
		/* 0 */ ld(offArch),
		/* 1 */ jeq(arch, 0, 7), // another ABI (32-bit calls on a 64-bit kernel): 9
		/* 2 */ ld(offNr),
		/* 3 */ jge(x32, 5, 0), // x32: 9
		/* 4 */ jeq(socketNr, 0, 3), // not socket(2): 8
		/* 5 */ ld(offArg2),
		/* 6 */ jeq(ipprotoMPTCP, 0, 1), // not MPTCP: 8
		/* 7 */ ret(unix.SECCOMP_RET_ERRNO | uint32(unix.EPROTONOSUPPORT)),
		/* 8 */ ret(unix.SECCOMP_RET_ALLOW),
		/* 9 */ ret(unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)),
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&prog)), 0, 0); err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	return nil
}
