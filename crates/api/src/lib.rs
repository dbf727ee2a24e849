//! The query API (/api/v1): JSON wire types, trace trees and roll-ups, search, facets, sessions; serves the embedded console.
