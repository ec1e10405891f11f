package envoyconfig

import (
	"errors"
	"fmt"
)

// Check loads the Envoy bootstrap at path, validates it and lints it, and
// returns every failure joined into one error, or nil. A file that does not
// parse is reported alone, since nothing else can be checked.
func Check(path string) error {
	bs, err := LoadFile(path)
	if err != nil {
		return err
	}
	var errs []error
	if err := Validate(bs); err != nil {
		errs = append(errs, fmt.Errorf("%s: validate: %w", path, err))
	}
	if err := Lint(bs).Err(); err != nil {
		errs = append(errs, fmt.Errorf("%s: lint: %w", path, err))
	}
	return errors.Join(errs...)
}
