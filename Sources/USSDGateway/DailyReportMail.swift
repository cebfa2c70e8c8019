import Curl
import Foundation
import MPesaBook

/// The day's reconciliation as a mail for finance (`report daily --email`): the subject names the
/// day and whether it reconciles (and, when not, each figure that does not), the body is the text
/// `report daily` prints, and the CSV `report daily --csv` prints is attached as
/// `reconciliation-YYYY-MM-DD.csv`, byte for byte.
public enum DailyReportMail {
    /// `Reconciliation 2026-12-06: reconciles`, or `... DOES NOT RECONCILE — ... off by` and the amount.
    public static func subject(_ report: DailyReport) -> String {
        "Reconciliation \(report.date): \(report.headline)"
    }

    /// The attachment's name for the report's day.
    public static func filename(_ report: DailyReport) -> String {
        "reconciliation-\(report.date).csv"
    }

    /// The mail for `report` from the settings' sender to its recipients, dated `now`.
    public static func message(_ report: DailyReport, settings: ReportMailSettings, now: Date) -> MailMessage {
        // The CSV as the command prints it: its lines and the newline `print` ends them with.
        let csv = Array((report.csv + "\n").utf8)
        return MailMessage(
            from: settings.sender, to: settings.recipients, subject: Self.subject(report), date: now, text: report.text + "\n",
            attachments: [MailMessage.Attachment(filename: Self.filename(report), contentType: "text/csv; charset=utf-8", data: csv)],
            timeZone: DailyReport.timeZone
        )
    }
}
