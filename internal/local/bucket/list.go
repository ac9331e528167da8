package bucket

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// MaxListKeys is the most keys (and common prefixes) one ListObjectsV2 page returns, and its default.
const MaxListKeys = 1000

type file struct {
	key  string
	path string
	fi   fs.FileInfo
}

// files returns the objects under prefix, sorted by key in UTF-8 byte order (S3's listing order).
// Hidden files, symlinks and names the key mapping cannot have produced are skipped.
func (b *Bucket) files(prefix string) ([]file, error) {
	start := "."
	if i := strings.LastIndex(prefix, "/"); i > 0 {
		if p, err := keyPath(prefix[:i]); err == nil {
			start = p
		}
	}
	var out []file
	err := fs.WalkDir(b.root.FS(), start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == start && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return nil // an entry vanished or is unreadable: not an object
		}
		if p != "." && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		key, ok := pathKey(p)
		if !ok || !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		out = append(out, file{key: key, path: p, fi: fi})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out, nil
}

// ListObjectsV2 lists keys in UTF-8 byte order with S3's semantics for Prefix, StartAfter,
// ContinuationToken, MaxKeys (default and maximum 1,000; common prefixes count towards it) and
// Delimiter (keys sharing the text up to the next delimiter are rolled up into one CommonPrefix).
func (b *Bucket) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	const op = "ListObjectsV2"
	if in.Bucket == nil || *in.Bucket != b.name {
		name := ""
		if in.Bucket != nil {
			name = *in.Bucket
		}
		return nil, noSuchBucket(op, name)
	}
	prefix, delim, startAfter := deref(in.Prefix), deref(in.Delimiter), deref(in.StartAfter)
	maxKeys := int32(MaxListKeys)
	if in.MaxKeys != nil && *in.MaxKeys >= 0 && *in.MaxKeys < maxKeys {
		maxKeys = *in.MaxKeys
	}
	after, afterPrefix := startAfter, ""
	if in.ContinuationToken != nil {
		k, isPrefix, err := decodeToken(*in.ContinuationToken)
		if err != nil {
			return nil, apiError(op, http.StatusBadRequest, generic(CodeInvalidArgument, "The continuation token provided is incorrect"))
		}
		after = max(after, k)
		if isPrefix {
			afterPrefix = k
		}
	}
	files, err := b.files(prefix)
	if err != nil {
		return nil, fmt.Errorf("listing s3://%s/%s: %w", b.name, prefix, err)
	}
	out := &s3.ListObjectsV2Output{
		Name: ptr(b.name), Prefix: in.Prefix, Delimiter: in.Delimiter, StartAfter: in.StartAfter,
		ContinuationToken: in.ContinuationToken, MaxKeys: ptr(maxKeys), EncodingType: in.EncodingType,
	}
	var count int32
	lastCP, lastItem, lastIsPrefix := "", "", false
	truncated := false
	for _, f := range files {
		if f.key <= after || (afterPrefix != "" && strings.HasPrefix(f.key, afterPrefix)) {
			continue
		}
		cp := ""
		if delim != "" {
			if i := strings.Index(f.key[len(prefix):], delim); i >= 0 {
				cp = f.key[:len(prefix)+i+len(delim)]
			}
		}
		if cp != "" && cp == lastCP {
			continue
		}
		if count == maxKeys {
			truncated = true
			break
		}
		if cp != "" {
			lastCP = cp
			out.CommonPrefixes = append(out.CommonPrefixes, types.CommonPrefix{Prefix: ptr(cp)})
			lastItem, lastIsPrefix = cp, true
			count++
			continue
		}
		b.mu.RLock()
		m, err := b.statInfo(f.path, f.fi)
		b.mu.RUnlock()
		if err != nil {
			continue // deleted since the walk
		}
		out.Contents = append(out.Contents, types.Object{
			Key: ptr(f.key), Size: ptr(m.Size), ETag: ptr(m.ETag),
			LastModified: ptr(m.LastModified), StorageClass: types.ObjectStorageClassStandard,
		})
		lastItem, lastIsPrefix = f.key, false
		count++
	}
	out.KeyCount = ptr(count)
	out.IsTruncated = ptr(truncated)
	if truncated {
		out.NextContinuationToken = ptr(encodeToken(lastItem, lastIsPrefix))
	}
	return out, nil
}

// A continuation token is the last key or common prefix returned, so a page resumes after it (and,
// for a common prefix, after every key it rolled up). It is opaque to callers, as on S3.
func encodeToken(last string, isPrefix bool) string {
	kind := "k"
	if isPrefix {
		kind = "p"
	}
	return base64.RawURLEncoding.EncodeToString([]byte(kind + ":" + last))
}

func decodeToken(tok string) (string, bool, error) {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return "", false, err
	}
	kind, last, ok := strings.Cut(string(raw), ":")
	if !ok || (kind != "k" && kind != "p") {
		return "", false, errors.New("malformed token")
	}
	return last, kind == "p", nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
