package refundflow

import "context"

// LockCaseForTest takes the engine's in-process lock of a case, as a
// concurrent input of the same process would.
func LockCaseForTest(e *Engine, id int64) func() {
	u, err := e.locks.lock(context.Background(), id)
	if err != nil {
		panic(err)
	}
	return u
}
