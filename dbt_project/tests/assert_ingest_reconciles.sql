-- Fails with every loaded landing file whose rows do not reconcile: read = accepted + duplicate + quarantined.
-- (A file the loader refused whole is not a counting error: gx_quarantine_rate fails and names it.)
select * from {{ ref('ingest_reconciliation') }} where not reconciled and rejected_reason is null
