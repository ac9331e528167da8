package main

import (
	"context"
	"errors"
	"io"
)

// cmdInvoke is not built yet (see the open issues).
func cmdInvoke(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return errors.New("invoke: not implemented yet")
}
