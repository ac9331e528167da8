package main

import (
	"context"
	"errors"
	"io"
)

// cmdGen is not built yet (see the open issues).
func cmdGen(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return errors.New("gen: not implemented yet")
}
