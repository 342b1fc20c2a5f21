-- Entry traces stored per chain in the same minutes, to set against the counted entries:
-- the tagged entry rows of chainmap_chain_minute (what the services' distro counts too).
-- {{row_environment}} is '1' unless the window has an environment and the table has the
-- column (otherwise entry_counts_stored_spans counts from the spans).
SELECT toString(ChainId) AS chain, sum(Calls) AS stored
FROM {{db}}.chainmap_chain_minute
WHERE ChainId IN {chains:Array(String)}
  AND Minute >= toDateTime({first_minute:Int64}) AND Minute < toDateTime({after_minute:Int64})
  AND {{row_environment}}
GROUP BY chain
