// Package notify tells users about security events of their account and
// keeps the list of them they can read ("recent security activity").
//
// Events come from two places:
//
//   - the audit trail: Audit decorates (or FromAudit is called with) store.Audit, so every
//     event the factor Registry writes is classified as it is appended:
//     factor.enrol / factor.confirm -> factor_added (backup_codes_regenerated
//     when a set replaced another), factor.change -> factor_changed,
//     factor.reset / admin.reset -> factor_removed, lockout -> lockout, and a
//     backup code spent down to the watermark -> backup_codes_low;
//   - the login flow: NewSignIn for a sign-in from a device (kind of device
//     and address) not seen before for the user.
//
// Exactly once: every event has a deduplication key ("audit:<seq>",
// "new_device:<hash>") that is the primary key of its store row, so a
// second Record of the same event, on any replica, is a no-op. Delivery
// claims a row in one transaction (pending -> sending, with a lapse time)
// before sending, so of several replicas exactly one sends it; a failure
// puts it back with a growing delay until MaxAttempts. A replica that dies
// between sending and marking sent leaves the claim to lapse and the
// message is sent again: the message id (webhook Idempotency-Key, e-mail
// Message-ID) is derived from the key, so the receiver can drop it.
//
// Messages never carry a secret: only the event, its time, the address and
// kind of device, the factor's name and a count.
package notify
