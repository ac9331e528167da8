package main

import (
	"context"
	"errors"
	"io"
)

// cmdLocal is not built yet (see the open issues).
func cmdLocal(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return errors.New("local: not implemented yet")
}
