// Command sprocketd watches a folder and imports new GPX files with the sprocket CLI.
//
// It polls rather than using inotify so that it works the same on network drives and on
// every operating system, and it waits until a file has stopped growing before importing it.
package main

import (
	"flag"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"example.org/sprocket/go/internal/ride"
)

type seenFile struct {
	size    int64
	stable  int
	handled bool
}

func main() {
	dir := flag.String("dir", ".", "folder to watch for .gpx files")
	every := flag.Duration("every", 5*time.Second, "polling interval")
	settle := flag.Int("settle", 2, "number of unchanged polls before a file is imported")
	cli := flag.String("sprocket", "sprocket", "path to the sprocket command")
	flag.Parse()

	seen := map[string]*seenFile{}
	log.Printf("watching %s every %s", *dir, *every)
	for {
		if err := poll(*dir, seen, *settle, *cli); err != nil {
			log.Printf("poll: %v", err)
		}
		time.Sleep(*every)
	}
}

func poll(dir string, seen map[string]*seenFile, settle int, cli string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if !e.IsDir() && strings.EqualFold(filepath.Ext(e.Name()), ".gpx") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names) // import in a stable order: oldest file names first

	for _, name := range names {
		path := filepath.Join(dir, name)
		info, err := os.Stat(path)
		if err != nil {
			continue
		}
		s, ok := seen[path]
		if !ok {
			seen[path] = &seenFile{size: info.Size()}
			continue
		}
		if s.handled {
			continue
		}
		if info.Size() != s.size {
			s.size, s.stable = info.Size(), 0
			continue
		}
		s.stable++
		if s.stable < settle {
			continue
		}
		if err := ride.CheckComplete(path); err != nil {
			log.Printf("%s: %v (will retry)", name, err)
			s.stable = 0
			continue
		}
		out, err := exec.Command(cli, "import", path).CombinedOutput()
		log.Printf("%s", strings.TrimSpace(string(out)))
		if err != nil {
			log.Printf("%s: import failed: %v", name, err)
		}
		s.handled = true
	}
	return nil
}
