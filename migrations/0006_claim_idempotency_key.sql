-- The claim of an Idempotency-Key (src/db/idempotency.rs) in one round trip:
-- the key's advisory lock for the rest of the transaction, then the key's
-- record, read by a query of its own. Under READ COMMITTED each query of a
-- volatile function takes a new snapshot, so the read sees every record
-- committed by the lock's earlier holders (a read in the query that takes
-- the lock could miss one committed a moment before the lock was let go).
-- The lock's key is the one the service took before this function.
create function claim_idempotency_key(claimer uuid, claimed text, ttl_hours integer)
returns table (locked boolean, fingerprint bytea, status smallint, location text, body bytea)
language plpgsql volatile as $$
#variable_conflict use_column
begin
    if not pg_try_advisory_xact_lock(hashtextextended(claimer::text || '/' || claimed, 0)) then
        return query select false, null::bytea, null::smallint, null::text, null::bytea;
        return;
    end if;
    return query
        select true, k.fingerprint, k.status, k.location, k.body
        from (values (1)) as one (x)
        left join idempotency_keys k
          on k.caller = claimer and k.key = claimed
         and k.created_at > now() - make_interval(hours => ttl_hours);
end
$$;
