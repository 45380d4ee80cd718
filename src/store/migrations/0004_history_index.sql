-- History queries by provider or convention over a long period (spec §7):
-- with only history_at, a provider's six months walk every entry of the
-- period (0.45 s for 1 000 000 entries); with these, only the provider's
-- (4 ms). The tie-break on the rowid keeps ORDER BY at, id free of a sort.
-- Interface has a handful of values: history_at serves it better.

CREATE INDEX history_provider_at ON history(provider, at);
CREATE INDEX history_convention_at ON history(convention, at);
