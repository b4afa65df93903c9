package report

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// StampLayout formats Run.Started (in UTC) into the file names Save uses.
// It sorts in time order.
const StampLayout = "20060102-150405"

// Latest is the name Save gives the copy of the newest run.
const Latest = "latest"

// Save writes <dir>/<stamp>.json, <dir>/<stamp>.md and the plots into
// <dir>/<stamp>/, and updates <dir>/latest.json, <dir>/latest.md and
// <dir>/latest/ (copies, not symlinks; latest.md's image links work from
// <dir>). stamp is Started in UTC as StampLayout.
//
// Save writes as much as it can: the JSON first, because it is the record
// the rest is derived from, then the plots, then the Markdown, whose image
// links name only plots that were written. A run without results gets no
// plots and is not an error. Saving the same run twice replaces its files.
func Save(r *Run, dir string) (stamp string, err error) {
	if r == nil {
		return "", ErrNoRun
	}
	stamp = r.Started.UTC().Format(StampLayout)
	var js bytes.Buffer
	if err := WriteJSON(&js, r); err != nil {
		return stamp, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return stamp, fmt.Errorf("save run: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, stamp+".json"), js.Bytes()); err != nil {
		return stamp, err
	}

	var errs []error
	var plotted []string
	err = replaceDir(filepath.Join(dir, stamp), func(tmp string) error {
		files, err := Plot(r, tmp)
		for _, f := range files {
			plotted = append(plotted, filepath.Base(f))
		}
		if errors.Is(err, ErrNoResults) {
			return nil
		}
		return err
	})
	if err != nil {
		// The plots that were written before the failure are in place;
		// link those and report the rest.
		errs = append(errs, err)
	}
	var md bytes.Buffer
	if err := writeMarkdown(&md, r, linksFor(r, stamp, plotted)); err != nil {
		return stamp, err
	}
	if err := writeFileAtomic(filepath.Join(dir, stamp+".md"), md.Bytes()); err != nil {
		errs = append(errs, err)
	}

	// latest.*: the same bytes for the JSON and the plots; the Markdown
	// is rendered again because its links must point into latest/.
	if err := writeFileAtomic(filepath.Join(dir, Latest+".json"), js.Bytes()); err != nil {
		errs = append(errs, err)
	}
	src := filepath.Join(dir, stamp)
	err = replaceDir(filepath.Join(dir, Latest), func(tmp string) error {
		for _, name := range plotted {
			if err := copyFile(filepath.Join(src, name), filepath.Join(tmp, name)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	md.Reset()
	if err := writeMarkdown(&md, r, linksFor(r, Latest, plotted)); err != nil {
		return stamp, err
	}
	if err := writeFileAtomic(filepath.Join(dir, Latest+".md"), md.Bytes()); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return stamp, fmt.Errorf("save run %s: %w", stamp, err)
	}
	return stamp, nil
}

// linksFor returns the plot links for a Markdown file in the save
// directory whose plots are in sub/. A plot is linked only when both its
// PNG and SVG were written.
func linksFor(r *Run, sub string, plotted []string) plotLinks {
	has := func(base string) bool {
		png, svg := false, false
		for _, f := range plotted {
			png = png || f == base+".png"
			svg = svg || f == base+".svg"
		}
		return png && svg
	}
	// Markdown links use '/', whatever the OS separator.
	links := plotLinks{sweeps: make(map[string]string)}
	if has(throughputPlot) {
		links.throughput = sub + "/" + throughputPlot
	}
	for sc, name := range sweepNames(r) {
		if has(name) {
			links.sweeps[sc] = sub + "/" + name
		}
	}
	return links
}

// writeFileAtomic writes data to a temporary file beside path and renames
// it over path, so a reader sees the old file or the new one, never half.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// replaceDir fills a fresh temporary directory beside path and then swaps
// it in for path, so stale files from an earlier save never linger and a
// reader never sees a half-filled directory. The swap is two renames (old
// aside, new in), as POSIX cannot rename over a non-empty directory; a
// crash between them leaves path missing, never mixed. If fill fails, what
// it wrote is still swapped in: a partial set of plots is more use than
// none, and the error says what is missing.
func replaceDir(path string, fill func(tmp string) error) error {
	parent, base := filepath.Dir(path), filepath.Base(path)
	tmp, err := os.MkdirTemp(parent, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("replace %s: %w", path, err)
	}
	fillErr := fill(tmp)
	old := ""
	if _, err := os.Lstat(path); err == nil {
		old = filepath.Join(parent, "."+base+".old-"+strings.TrimPrefix(filepath.Base(tmp), "."+base+".tmp-"))
		if err := os.Rename(path, old); err != nil {
			os.RemoveAll(tmp)
			return fmt.Errorf("replace %s: %w", path, err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		os.RemoveAll(tmp)
		if old != "" {
			os.Rename(old, path)
		}
		return fmt.Errorf("replace %s: %w", path, err)
	}
	if old != "" {
		os.RemoveAll(old)
	}
	return fillErr
}

func copyFile(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	_, err = io.Copy(out, in)
	return err
}
