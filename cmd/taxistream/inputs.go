package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/taxistream/taxistream/internal/feed"
)

// The rule for input files of `convert` and `local`: every argument is checked before anything starts
// (feed.StatInput: missing, a directory, a symbolic link loop, a named pipe, a device or an unreadable
// file is not an input); each bad one is reported on its own line and skipped, the others go on, and
// the command ends with a non-zero status naming the skipped ones. Nothing starts when none is good.
// (`produce` and `invoke` refuse to start with a bad one.)

// checkInputs applies feed.StatInput to every name ("-", stdin, is always good) and prints a line for
// each bad one. It returns the good names, in order, and the skipped ones.
func checkInputs(cmd string, names []string, stderr io.Writer) (good, skipped []string) {
	for _, name := range names {
		if name == "-" {
			good = append(good, name)
			continue
		}
		if _, err := feed.StatInput(name); err != nil {
			fmt.Fprintf(stderr, "taxistream %s: skipping %v\n", cmd, err)
			skipped = append(skipped, name)
			continue
		}
		good = append(good, name)
	}
	return good, skipped
}

// skippedError is the error a command ends with when it skipped inputs.
func skippedError(skipped []string) error {
	return fmt.Errorf("skipped %d input(s) that are not readable files: %s", len(skipped), strings.Join(skipped, ", "))
}
