package kpl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/taxistream/taxistream/internal/testenv"
)

// Cross-checks against the official KPL aggregation module for Node (npm aws-kinesis-agg), run by
// tools/node/agg.js and tools/node/deagg.js.

type nodeRecord struct {
	PartitionKey      string `json:"partitionKey"`
	ExplicitHashKey   string `json:"explicitHashKey,omitempty"`
	SequenceNumber    string `json:"sequenceNumber,omitempty"`
	SubSequenceNumber *int64 `json:"subSequenceNumber,omitempty"`
	Data              []byte `json:"data"` // base64 in JSON, as the scripts expect
}

type nodeDeaggResult struct {
	Error       string       `json:"error"`
	UserRecords []nodeRecord `json:"userRecords"`
}

// runNode runs a tools/node script with the JSON of in on stdin and decodes its stdout into out.
func runNode(t *testing.T, script string, in, out any) {
	t.Helper()
	node := testenv.Node(t)
	modules := testenv.NodeModules(t)
	body, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(testenv.Root(t), "tools", "node", script))
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	cmd.Stdin = bytes.NewReader(body)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, stderr.String())
	}
	if err := json.Unmarshal(stdout, out); err != nil {
		t.Fatalf("decoding the output of %s: %v\n%s", script, err, stdout)
	}
}

func crossCheckSets() map[string][]UserRecord {
	sets := map[string][]UserRecord{"golden": goldenRecords()}
	var distinct, big, unicode []UserRecord
	for i := range 500 {
		distinct = append(distinct, UserRecord{PartitionKey: fmt.Sprint(i%265 + 1), Data: []byte(fmt.Sprintf(`{"row":%d}`+"\n", i))})
	}
	for i := range 3 {
		big = append(big, UserRecord{PartitionKey: strings.Repeat("k", 256), Data: bytes.Repeat([]byte{byte('a' + i)}, 100_000)})
	}
	for _, k := range []string{"Zoë", "東京", "✓✓", "Zoë"} {
		unicode = append(unicode, UserRecord{PartitionKey: k, Data: []byte(k)})
	}
	sets["500 rows"], sets["large data"], sets["unicode keys"] = distinct, big, unicode
	return sets
}

func TestNodeDeaggregatesOurAggregates(t *testing.T) {
	for name, recs := range crossCheckSets() {
		t.Run(name, func(t *testing.T) {
			in := struct {
				Records []nodeRecord `json:"records"`
			}{[]nodeRecord{{PartitionKey: recs[0].PartitionKey, SequenceNumber: "1", Data: Aggregate(recs)}}}
			var out struct {
				Records []nodeDeaggResult `json:"records"`
			}
			runNode(t, "deagg.js", in, &out)
			if len(out.Records) != 1 || out.Records[0].Error != "" {
				t.Fatalf("node deaggregate: %+v", out.Records)
			}
			got := out.Records[0].UserRecords
			if len(got) != len(recs) {
				t.Fatalf("node found %d user records, want %d", len(got), len(recs))
			}
			for i, r := range recs {
				g := got[i]
				if g.PartitionKey != r.PartitionKey || !bytes.Equal(g.Data, r.Data) || *g.SubSequenceNumber != int64(i) {
					t.Errorf("record %d: node got key %q sub %d data %.40q, want key %q sub %d data %.40q",
						i, g.PartitionKey, *g.SubSequenceNumber, g.Data, r.PartitionKey, i, r.Data)
				}
				// The Node module reports explicit_hash_key_table[0] for records without an index
				// (protobufjs decodes the absent optional as 0), so only set keys are compared.
				if r.ExplicitHashKey != "" && g.ExplicitHashKey != r.ExplicitHashKey {
					t.Errorf("record %d: explicit hash key %q, want %q", i, g.ExplicitHashKey, r.ExplicitHashKey)
				}
			}
		})
	}
}

func TestWeDeaggregateNodeAggregates(t *testing.T) {
	for name, recs := range crossCheckSets() {
		t.Run(name, func(t *testing.T) {
			// aws-kinesis-agg builds its key tables with Object.keys, which lists integer-like keys
			// ("7", "132") in ascending order instead of insertion order, so its aggregates point at
			// the wrong keys (TestNodeAggregatorMisordersIntegerKeys). Keep its input clear of them.
			for i := range recs {
				recs[i].PartitionKey = "k" + recs[i].PartitionKey
			}
			var in struct {
				Records []nodeRecord `json:"records"`
			}
			for _, r := range recs {
				in.Records = append(in.Records, nodeRecord{PartitionKey: r.PartitionKey, ExplicitHashKey: r.ExplicitHashKey, Data: r.Data})
			}
			var out struct {
				Records []nodeRecord `json:"records"`
			}
			runNode(t, "agg.js", in, &out)
			if len(out.Records) != 1 {
				t.Fatalf("node made %d aggregates, want 1", len(out.Records))
			}
			// Byte for byte what we write for the same records.
			if theirs, ours := out.Records[0].Data, Aggregate(recs); !bytes.Equal(theirs, ours) {
				t.Errorf("node aggregate differs from ours:\nnode %x\nours %x", head(theirs), head(ours))
			}
			got, err := Deaggregate(out.Records[0].Data, out.Records[0].PartitionKey, "")
			if err != nil {
				t.Fatal(err)
			}
			want := recs
			for i := range want {
				if len(want[i].Data) == 0 {
					want[i].Data = []byte{}
				}
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// TestNodeAggregatorMisordersIntegerKeys pins down the bug of aws-kinesis-agg 4.2.8 that the test
// above steps around: integer-like partition keys (our pu_location_id keys are) come out of its
// aggregator attached to the wrong user records. If a later version fixes it, this test fails and the
// work-around above can go.
func TestNodeAggregatorMisordersIntegerKeys(t *testing.T) {
	recs := []UserRecord{{PartitionKey: "132", Data: []byte("a")}, {PartitionKey: "7", Data: []byte("b")}}
	in := struct {
		Records []nodeRecord `json:"records"`
	}{[]nodeRecord{{PartitionKey: "132", Data: []byte("a")}, {PartitionKey: "7", Data: []byte("b")}}}
	var out struct {
		Records []nodeRecord `json:"records"`
	}
	runNode(t, "agg.js", in, &out)
	got, err := Deaggregate(out.Records[0].Data, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if got[0].PartitionKey != "7" || got[1].PartitionKey != "132" {
		t.Errorf("node aggregator keys: %q, %q; the known bug gives \"7\", \"132\" (want fixed? then drop the work-around)",
			got[0].PartitionKey, got[1].PartitionKey)
	}
	// Ours keeps each record's own key.
	if ours, _ := Deaggregate(Aggregate(recs), "", ""); ours[0].PartitionKey != "132" || ours[1].PartitionKey != "7" {
		t.Errorf("our keys: %q, %q", ours[0].PartitionKey, ours[1].PartitionKey)
	}
}

func TestNodeRejectsWhatWeReject(t *testing.T) {
	bad := Aggregate(goldenRecords())
	bad[12] ^= 0x40
	in := struct {
		Records []nodeRecord `json:"records"`
	}{[]nodeRecord{{PartitionKey: "132", SequenceNumber: "1", Data: bad}}}
	var out struct {
		Records []nodeDeaggResult `json:"records"`
	}
	runNode(t, "deagg.js", in, &out)
	if len(out.Records) != 1 || !strings.Contains(out.Records[0].Error, "checksum") {
		t.Errorf("node on a corrupt aggregate: %+v, want a checksum error", out.Records)
	}
	if _, err := Deaggregate(bad, "132", ""); err == nil {
		t.Error("Deaggregate accepted the corrupt aggregate")
	}
}

func head(b []byte) []byte {
	if len(b) > 96 {
		return b[:96]
	}
	return b
}
