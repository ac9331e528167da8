package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/taxistream/taxistream/internal/convert"
	"github.com/taxistream/taxistream/internal/gen"
)

// benchSeed is the generator seed of every section: the same size always gives the same file.
const benchSeed = 2019

// genOptions is the file every section uses: yellow taxi, 2019 layout (the workshop's data), LF.
func genOptions(rows int64) gen.Options {
	return gen.Options{Taxi: "yellow", Layout: 2019, Month: 1, Rows: rows, Seed: benchSeed}
}

// rowsFor returns how many generated rows make about size bytes of CSV.
func rowsFor(size int64) (int64, error) {
	const sample = 5000
	st, err := gen.Write(io.Discard, genOptions(sample))
	if err != nil {
		return 0, fmt.Errorf("sizing generated rows: %w", err)
	}
	perRow := float64(st.Bytes) / sample
	return max(1, int64(float64(size)/perRow)), nil
}

// genFile writes about size bytes of generated CSV to path.
func genFile(path string, size int64) (gen.Stats, error) {
	rows, err := rowsFor(size)
	if err != nil {
		return gen.Stats{}, err
	}
	f, err := os.Create(path)
	if err != nil {
		return gen.Stats{}, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	st, err := gen.Write(w, genOptions(rows))
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return st, fmt.Errorf("generating %s: %w", path, err)
	}
	return st, nil
}

// record is one converted trip: its JSON record and its partition key.
type record struct {
	JSON []byte
	Key  string
}

// genRecords generates n rows and converts them, as the stream will see them.
func genRecords(n int) ([]record, error) {
	var buf bytes.Buffer
	if _, err := gen.Write(&buf, genOptions(int64(n))); err != nil {
		return nil, fmt.Errorf("generating rows: %w", err)
	}
	rr, err := convert.NewCSVReader(&buf, convert.Options{Source: convert.Source{Bucket: "bench", Key: "raw/yellow_tripdata_2019-01.csv", Version: "v1"}})
	if err != nil {
		return nil, err
	}
	out := make([]record, 0, n)
	for {
		rec, err := rr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var re *convert.RowError
		if errors.As(err, &re) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("converting generated rows: %w", err)
		}
		key := rr.Value("pu_location_id")
		if key == "" {
			key = "0"
		}
		out = append(out, record{JSON: bytes.Clone(rec.JSON), Key: key})
	}
	if len(out) == 0 {
		return nil, errors.New("converting generated rows: no records")
	}
	return out, nil
}
