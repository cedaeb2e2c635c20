package streams

import "hipnet.dev/internal/deadline"

// deadlineT wakes the Reads and Writes that wait for a dialed stream's
// answer when the application's deadline passes (internal/deadline); the
// stream's own deadlines cover everything else.
type deadlineT = deadline.Deadline
