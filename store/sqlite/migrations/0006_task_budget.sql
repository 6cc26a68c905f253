-- A task's USD budget in pico-USD (0: none): the inference proxy refuses
-- the model calls of the task's sessions once their usage records cost that much.
ALTER TABLE tasks ADD COLUMN budget_pico_usd INTEGER NOT NULL DEFAULT 0 CHECK (budget_pico_usd >= 0);
