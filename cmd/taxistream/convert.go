package main

import (
	"context"
	"errors"
	"io"
)

// cmdConvert is not built yet (see the open issues).
func cmdConvert(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return errors.New("convert: not implemented yet")
}
