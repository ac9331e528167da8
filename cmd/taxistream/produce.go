package main

import (
	"context"
	"errors"
	"io"
)

// cmdProduce is not built yet (see the open issues).
func cmdProduce(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return errors.New("produce: not implemented yet")
}
