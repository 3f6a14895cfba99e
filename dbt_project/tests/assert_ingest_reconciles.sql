-- Fails with every landing file whose rows do not reconcile: read = accepted + duplicate + quarantined.
select * from {{ ref('ingest_reconciliation') }} where not reconciled
