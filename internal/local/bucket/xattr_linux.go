//go:build linux

package bucket

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// metaXattr is the extended attribute that holds an object's metadata (its sidecar's JSON).
const metaXattr = "user.taxistream.s3"

// setXattr stores data as f's metadata attribute.
func setXattr(f *os.File, data []byte) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fsetxattr(int(fd), metaXattr, data, 0) }); err != nil {
		return err
	}
	return serr
}

// getXattr returns f's metadata attribute; errNoXattr when it has none.
func getXattr(f *os.File) ([]byte, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 512)
	for {
		var (
			n    int
			gerr error
		)
		if err := rc.Control(func(fd uintptr) { n, gerr = unix.Fgetxattr(int(fd), metaXattr, buf) }); err != nil {
			return nil, err
		}
		switch {
		case gerr == nil:
			return buf[:n], nil
		case errors.Is(gerr, unix.ERANGE) && len(buf) < 64<<10:
			buf = make([]byte, 2*len(buf))
		case errors.Is(gerr, unix.ENODATA):
			return nil, errNoXattr
		default:
			return nil, gerr
		}
	}
}
