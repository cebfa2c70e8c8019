/// A connection to a server through a blocking C library, used by one pool thread at a time.
///
/// The pool hands a connection to exactly one caller, and every call on it runs on the pool's own
/// threads, so implementations need no locking of their own.
public protocol PoolableConnection: AnyObject {
    /// Closes the underlying connection; called on a pool thread when the pool shuts down.
    func close()
}
