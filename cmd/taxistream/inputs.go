package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"
)

// The rule for input files of `convert` and `local` (and the one `produce` and `invoke` follow for a
// file they are given): every argument is checked before anything starts; each one that cannot be
// read as a file is reported on its own line and skipped, the others go on, and the command ends with
// a non-zero status naming the skipped ones. Nothing starts when none is good.

// inputProblem says why name cannot be an input file: missing, a directory, a symbolic link loop, a
// named pipe (reading one blocks until a writer comes, and an interrupt cannot stop it), a device or
// socket, or unreadable. "" means it is a readable regular file (a symbolic link to one is fine).
func inputProblem(name string) string {
	fi, err := os.Stat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if _, lerr := os.Lstat(name); lerr == nil {
			return "a symbolic link to nothing (" + linkTarget(name) + ")"
		}
		return "no such file"
	case errors.Is(err, syscall.ELOOP):
		return "a symbolic link loop"
	case err != nil:
		return strings.TrimPrefix(err.Error(), "stat "+name+": ")
	case fi.IsDir():
		return fmt.Sprintf("is a directory (use a glob such as %s/*.csv)", strings.TrimSuffix(name, "/"))
	case fi.Mode()&fs.ModeNamedPipe != 0:
		return "is a named pipe (FIFO), not a file: copy it to a file first (convert also reads - from stdin)"
	case !fi.Mode().IsRegular():
		return "is not a regular file (a device or socket)"
	}
	f, err := os.Open(name)
	if err != nil {
		return strings.TrimPrefix(err.Error(), "open "+name+": ")
	}
	f.Close()
	return ""
}

func linkTarget(name string) string {
	t, err := os.Readlink(name)
	if err != nil {
		return "?"
	}
	return t
}

// checkInputs applies inputProblem to every name ("-", stdin, is always good) and prints a line for
// each bad one. It returns the good names, in order, and the skipped ones.
func checkInputs(cmd string, names []string, stderr io.Writer) (good, skipped []string) {
	for _, name := range names {
		if name == "-" {
			good = append(good, name)
			continue
		}
		if p := inputProblem(name); p != "" {
			fmt.Fprintf(stderr, "taxistream %s: skipping %s: %s\n", cmd, name, p)
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
