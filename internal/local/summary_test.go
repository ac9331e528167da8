package local

import (
	"strings"
	"testing"
)

// TestReconcile: each way a run can lose or add a record makes the reconciliation fail, including a
// lost record hidden by a stray one (equal distinct counts, different ids).
func TestReconcile(t *testing.T) {
	good := Summary{Objects: 2, ObjectsDone: 2, RowsRead: 100, RecordsSent: 98, Rejected: 2,
		ArchiveDistinct: 98, ArchiveRecords: 99, ConsumerDistinct: 98}
	tests := []struct {
		name string
		mod  func(s *Summary)
		want string // a word of the failing line, "" for reconciled
	}{
		{"reconciled", func(*Summary) {}, ""},
		{"row lost before the stream", func(s *Summary) { s.RecordsSent = 97 }, "rows read"},
		{"object failed", func(s *Summary) { s.ObjectsDone = 1; s.ObjectsFailed = 1 }, "objects done"},
		{"record missing from the archive", func(s *Summary) { s.ArchiveDistinct = 97 }, "archive holds"},
		{"record missing from the consumer", func(s *Summary) { s.ConsumerDistinct = 97 }, "consumer wrote"},
		{"lost record hidden by a stray one", func(s *Summary) { s.ArchivedNotConsumed, s.ConsumerNotArchived = 1, 1 }, "same record ids"},
		{"batch in the failure destination", func(s *Summary) { s.FailureRecords = 1 }, "failure destinations"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good
			tt.mod(&s)
			s.reconcile(true, true)
			if tt.want == "" {
				if !s.Reconciled {
					t.Fatalf("not reconciled: %v", s.Reconciliation)
				}
				return
			}
			if s.Reconciled {
				t.Fatalf("reconciled, want a mismatch on %q: %v", tt.want, s.Reconciliation)
			}
			found := false
			for _, l := range s.Reconciliation {
				found = found || strings.HasPrefix(l, "MISMATCH") && strings.Contains(l, tt.want)
			}
			if !found {
				t.Errorf("no MISMATCH line about %q: %v", tt.want, s.Reconciliation)
			}
		})
	}
}
