//go:build !unix

package records

// lockDir does nothing where flock is missing: one Writer per spool directory
// is then the caller's duty.
func lockDir(string) (unlock func() error, err error) {
	return func() error { return nil }, nil
}
