"""One router per resource: records, versions, search, holds, disposition, audit, admin."""
