package users

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// migration is one migrations/<engine>/NNNN_description.sql file.
type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads an engine's embedded migrations in version order.
// Each engine applies them its own way (sqlite.go, postgres.go).
func loadMigrations(fsys embed.FS, engine string) ([]migration, error) {
	names, err := fs.Glob(fsys, "migrations/"+engine+"/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, name := range names {
		base := path.Base(name)
		prefix, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(prefix)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("users: %s: migration %s: name must be NNNN_description.sql", engine, base)
		}
		b, err := fsys.ReadFile(name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(b)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("users: %s: migrations %s and %s share version %d", engine, ms[i-1].name, ms[i].name, ms[i].version)
		}
	}
	return ms, nil
}
