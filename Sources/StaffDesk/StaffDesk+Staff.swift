import Foundation
import Hummingbird

/// The staff list, and an administrator's changes to an account: sign out everywhere, a new
/// second factor (enrolled by the member at their next sign-in, with their own password), disable
/// and enable. Each is written to the audit trail with the administrator and their reason. No
/// administrator learns a password: new ones come from the owner's `staff reset`, so one
/// administrator cannot take over two accounts and pass four eyes alone. Roles are the owner's.
extension StaffDesk {
    func registerStaff<Context: RequestContext>(_ desk: RouterGroup<Context>) {
        desk.get("/staff") { request, _ in
            try await self.page(request, .viewStaff) { visit in
                let mayManage = visit.role.may(.manageStaff)
                let now = self.now()
                let members = try await self.directory.all().map { member -> [String: Any] in
                    let state = member.disabledAt != nil ? "disabled" : member.isLocked(at: now) ? "locked until \(DeskFormat.time(member.lockedUntil))" : "active"
                    return [
                        "login": member.login, "name": member.displayName, "role": member.role.title, "state": state,
                        "secondFactor": member.totpEnrolledAt != nil ? "enrolled" : member.totpShownAt != nil ? "shown, not confirmed" : "not set up",
                        "lastSignIn": DeskFormat.time(member.lastSignedInAt), "self": member.login == visit.login,
                        "toggle": member.disabledAt == nil ? "disable" : "enable", "toggleLabel": member.disabledAt == nil ? "Disable" : "Enable",
                    ]
                }
                return try self.render("staff", title: "Staff", visit: visit, current: "/desk/staff", ["members": members, "mayManage": mayManage])
            }
        }
        desk.post("/staff/:login/change") { request, context in
            let login = context.parameters.get("login") ?? ""
            return try await self.post(request, .manageStaff) { visit, form in try await self.changeStaff(login, form, &visit) }
        }
    }

    func changeStaff(_ login: String, _ form: [String: String], _ visit: inout Visit) async throws -> Response {
        guard login != visit.login else { return self.redirect("/desk/staff", &visit, problem: "Change your own account from its page.") }
        guard try await self.directory.member(login) != nil else { return self.redirect("/desk/staff", &visit, problem: "No such member of staff.") }
        let reason: String
        switch Self.action(form) {
        case .failure(let error): return self.redirect("/desk/staff", &visit, problem: error.description)
        case .success(let action): reason = action.reason
        }
        let change = form["change"] ?? ""
        let details = ["by": visit.login, "change": change]
        switch change {
        case "sign-out":
            try await self.directory.signOutEverywhere(login)
        case "disable", "enable":
            _ = try await self.directory.setDisabled(login, change == "disable")
        case "reset-second-factor":
            _ = try await self.directory.resetSecondFactor(login)
        case "unlock":
            _ = try await self.directory.unlock(login)
        default:
            return self.redirect("/desk/staff", &visit, problem: "Choose a change.")
        }
        try await self.directory.audit("desk.staff_changed", login: login, reason: reason, details: details)
        return self.redirect("/desk/staff", &visit, notice: "\(login): \(change.replacingOccurrences(of: "-", with: " ")) done.")
    }
}
