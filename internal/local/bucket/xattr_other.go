//go:build !linux

package bucket

import (
	"errors"
	"os"
)

var errXattrUnsupported = errors.New("extended attributes are used on Linux only")

func setXattr(*os.File, []byte) error { return errXattrUnsupported }

func getXattr(*os.File) ([]byte, error) { return nil, errXattrUnsupported }
