package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	"github.com/taxistream/taxistream/internal/local"
	"github.com/taxistream/taxistream/internal/local/wire"
	"github.com/taxistream/taxistream/internal/obs"
)

// startServe serves the local cloud's bucket and stream on addr over the AWS wire protocols (`local
// --serve`) and says how to point the AWS tools at it. stop stops serving (requests in flight finish, up
// to 30 s); it may be called more than once.
func startServe(cloud *local.Cloud, addr string, stderr io.Writer) (stop func(), err error) {
	srv, err := wire.New(wire.Config{
		Bucket:    cloud.Bucket,
		Stream:    cloud.Stream,
		UploadDir: filepath.Join(filepath.Dir(cloud.Bucket.Dir()), "uploads"),
		Logger:    obs.NewLogger(cloud.Logs(), "INFO").With("service", "wire"), // the shape of the functions' lines in the same log
	})
	if err != nil {
		return nil, err
	}
	bound, err := srv.Listen(addr)
	if err != nil {
		srv.Shutdown(context.Background())
		return nil, fmt.Errorf("serving the local cloud: %w (another local cloud or LocalStack on that port? choose one with --addr, e.g. --addr 127.0.0.1:0)", err)
	}
	url := "http://" + bound
	fmt.Fprintf(stderr, "serving S3 and Kinesis at %s; with the AWS CLI, boto3 or an SDK:\n", url)
	fmt.Fprintf(stderr, "  export AWS_ENDPOINT_URL=%s AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=%s\n", url, cloud.Settings.Region)
	fmt.Fprintf(stderr, "  aws s3 cp trips.csv s3://%s/raw/        # ingestion starts on upload\n", cloud.Bucket.Name())
	fmt.Fprintf(stderr, "  aws kinesis list-shards --stream-name %s\n", cloud.Stream.Name())
	if !wire.IsLoopback(bound) {
		fmt.Fprintf(stderr, "warning: %s is not a loopback address: anyone who can reach it can read and write the bucket and the stream (credentials are not checked)\n", bound)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				fmt.Fprintln(stderr, "stopping the wire server:", err)
			}
		})
	}, nil
}
