/// What the engine asks its host to do next.
public enum Step: Sendable {
    /// Show `page`; when it continues, keep `state` for the next hop.
    case show(Page, SessionState)
    /// Run an action, then call ``Engine/resume(_:with:)`` with `state` and the result.
    case perform(ActionRequest, SessionState)
}
