import Basics
import Foundation
import Hummingbird
import NIOCore
import Synchronization

/// A small jobs API with sample jobs, served by a development gateway at `/sandbox/jobs` when
/// `JOBS_API_URL` is not set, so the default menus' Jobs option works after `make run`. It speaks
/// what the menus' `http` actions call (`GET /categories`, `GET /jobs?category=`, `POST
/// /jobs/<id>/applications`) behind the same `X-Api-Key` check as a real backend.
public final class JobsSandbox: Sendable {
    public static let pathPrefix = "/sandbox/jobs"
    public static let apiKey = "sandbox-jobs-key"

    struct Job: Sendable {
        let id: String
        let category: String
        let title: String
        let location: String
        let payCents: Int64
    }

    static let categories: [(id: String, name: String)] = [("drv", "Driving"), ("hsk", "Housekeeping"), ("sec", "Security"), ("con", "Construction")]

    static let jobs: [Job] = [
        Job(id: "drv-1", category: "drv", title: "Boda boda rider", location: "Westlands", payCents: 120_000),
        Job(id: "drv-2", category: "drv", title: "Delivery driver", location: "Industrial Area", payCents: 150_000),
        Job(id: "drv-3", category: "drv", title: "Matatu driver", location: "Embakasi", payCents: 180_000),
        Job(id: "drv-4", category: "drv", title: "Tuk-tuk driver", location: "Mombasa", payCents: 110_000),
        Job(id: "drv-5", category: "drv", title: "Lorry driver", location: "Nakuru", payCents: 200_000),
        Job(id: "drv-6", category: "drv", title: "School van driver", location: "Karen", payCents: 140_000),
        Job(id: "drv-7", category: "drv", title: "Taxi driver", location: "Kisumu", payCents: 160_000),
        Job(id: "hsk-1", category: "hsk", title: "House help", location: "Kilimani", payCents: 80_000),
        Job(id: "hsk-2", category: "hsk", title: "Gardener", location: "Runda", payCents: 90_000),
        Job(id: "sec-1", category: "sec", title: "Night guard", location: "Upper Hill", payCents: 100_000),
        Job(id: "con-1", category: "con", title: "Mason", location: "Syokimau", payCents: 130_000),
        Job(id: "con-2", category: "con", title: "Painter", location: "Kitengela", payCents: 120_000),
    ]

    /// Applications made, `msisdn|job`: a second one for the same job is 409.
    private let applications = Mutex<Set<String>>([])

    public init() {}

    public func register<Context: RequestContext>(on router: Router<Context>) {
        let group = router.group(RouterPath(Self.pathPrefix))
        group.get("/categories") { request, _ -> Response in
            guard Self.authorised(request) else { return Self.json(401, #"{"error":"unauthorised"}"#) }
            return Self.json(
                200,
                JSONValue.object(["categories": .array(Self.categories.map { .object(["id": .string($0.id), "name": .string($0.name)]) })]).serialized
            )
        }
        group.get("/jobs") { request, _ -> Response in
            guard Self.authorised(request) else { return Self.json(401, #"{"error":"unauthorised"}"#) }
            let category = request.uri.queryParameters["category"].map(String.init) ?? ""
            let jobs = Self.jobs.filter { $0.category == category }.map { job -> JSONValue in
                .object(["id": .string(job.id), "title": .string(job.title), "location": .string(job.location), "payCents": .integer(job.payCents)])
            }
            return Self.json(200, JSONValue.object(["jobs": .array(jobs)]).serialized)
        }
        group.post("/jobs/:id/applications") { request, context -> Response in
            guard Self.authorised(request) else { return Self.json(401, #"{"error":"unauthorised"}"#) }
            let id = context.parameters.get("id") ?? ""
            guard Self.jobs.contains(where: { $0.id == id }) else { return Self.json(404, #"{"error":"no such job"}"#) }
            let body = try await request.body.collect(upTo: 4096)
            guard let applicant = JSONValue.parse(Array(body.readableBytesView))?["msisdn"]?.string, !applicant.isEmpty else {
                return Self.json(400, #"{"error":"msisdn missing"}"#)
            }
            let fresh = self.applications.withLock { $0.insert(applicant + "|" + id).inserted }
            return fresh ? Self.json(201, #"{"status":"received"}"#) : Self.json(409, #"{"error":"already applied"}"#)
        }
    }

    static func authorised(_ request: Request) -> Bool {
        request.headers[values: .init("X-Api-Key")!].first == Self.apiKey
    }

    static func json(_ status: Int, _ text: String) -> Response {
        Response(status: .init(code: status), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
