// Command rapport-ferretdb runs FerretDB 1.24 (MongoDB wire protocol, SQLite backend) for local
// development and tests. It embeds the ferretdb package because `go install .../cmd/ferretdb` builds a
// binary that panics at start: the module does not ship build/version/version.txt.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address for the MongoDB wire protocol")
	dataDir := flag.String("data", "data/ferretdb", "directory holding the SQLite databases")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		logger.Error("cannot create data directory", "error", err)
		os.Exit(1)
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + *dataDir + "/",
	})
	if err != nil {
		logger.Error("cannot configure FerretDB", "error", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	// A line the start script waits for: the listener is bound once New returns.
	logger.Warn("FerretDB listening", "address", *listen, "data", *dataDir)
	if err := f.Run(ctx); err != nil {
		logger.Error("FerretDB stopped", "error", err)
		os.Exit(1)
	}
}
