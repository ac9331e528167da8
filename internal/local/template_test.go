package local

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestStartOutsideTheRepository: with no --template and no ./template.yaml (a `go install`ed binary run
// anywhere) the local cloud uses the template built into the binary, with the same settings as the
// repository's template.yaml.
func TestStartOutsideTheRepository(t *testing.T) {
	repoTemplate, err := filepath.Abs(filepath.Join("..", "..", "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	fromFile, err := Start(ctx, Options{Dir: t.TempDir(), TemplatePath: repoTemplate})
	if err != nil {
		t.Fatalf("Start with the repository's template: %v", err)
	}
	fromFile.Close()

	t.Chdir(t.TempDir())
	c, err := Start(ctx, Options{Dir: filepath.Join(t.TempDir(), "state")})
	if err != nil {
		t.Fatalf("Start outside the repository: %v", err)
	}
	defer c.Close()
	if c.TemplatePath != EmbeddedTemplate {
		t.Errorf("TemplatePath %q, want %q", c.TemplatePath, EmbeddedTemplate)
	}
	if diff := cmp.Diff(fromFile.Settings, c.Settings); diff != "" {
		t.Errorf("built-in template's settings differ from template.yaml's (-file +built-in):\n%s", diff)
	}
}
