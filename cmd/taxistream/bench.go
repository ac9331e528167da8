package main

import (
	"context"
	"errors"
	"io"
)

// cmdBench is not built yet (see the open issues).
func cmdBench(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return errors.New("bench: not implemented yet")
}
