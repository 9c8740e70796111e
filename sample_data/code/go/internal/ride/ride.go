// Package ride has the small amount of GPX knowledge sprocketd needs: enough to tell a
// finished track file from one that is still being written.
package ride

import (
	"bytes"
	"errors"
	"io"
	"os"
)

// ErrIncomplete is returned for files that do not yet end with a closing </gpx> tag.
var ErrIncomplete = errors.New("gpx file is incomplete")

// tailSize is how many bytes from the end of the file we inspect.
const tailSize = 256

// CheckComplete reports whether the file at path looks like a complete GPX document.
// Devices and sync tools write files in several steps; importing a half-written file would
// record a ride that stops in the middle of nowhere.
func CheckComplete(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()

	info, err := f.Stat()
	if err != nil {
		return err
	}
	size := info.Size()
	if size == 0 {
		return ErrIncomplete
	}
	off := size - tailSize
	if off < 0 {
		off = 0
	}
	buf := make([]byte, size-off)
	if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
		return err
	}
	if !bytes.Contains(bytes.TrimSpace(buf), []byte("</gpx>")) {
		return ErrIncomplete
	}
	return nil
}
