package turn

import "errors"

// ErrConfig: NewServer was given an unusable Config; the wrapping error
// names the field.
var ErrConfig = errors.New("turn: invalid config")
