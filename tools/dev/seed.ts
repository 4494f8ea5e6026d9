// A demo catalog spread over every shard, written once (when no category exists).
import type { Fulfillment } from '../../src/catalog/model.js';
import * as catalog from '../../src/catalog/service.js';
import type { ToolDeps } from '../../src/deps.js';

const DEMO: { category: string; items: [string, number, number, Fulfillment?][] }[] = [
  { category: 'Electronics', items: [['Noise-cancelling headphones', 19900, 50], ['4K monitor', 34900, 20], ['USB-C dock', 8900, 100]] },
  { category: 'Books', items: [['Designing Data-Intensive Applications', 4500, 200], ['The Art of PostgreSQL', 3900, 150]] },
  { category: 'Games', items: [['Console bundle (doorbuster)', 29900, 10], ['Controller', 5900, 300]] },
  { category: 'Home', items: [['Espresso machine', 24900, 30], ['Air fryer', 9900, 80]] },
  { category: 'Gift cards', items: [['Mobile data 10 GB', 1500, 1000, 'provider'], ['Streaming credit 1 month', 999, 1000, 'provider']] },
  { category: 'Furniture', items: [['Standing desk', 39900, 15, 'shipment'], ['Office chair', 19900, 25, 'shipment']] },
];

export async function seedDemo(deps: ToolDeps): Promise<boolean> {
  const existing = await catalog.loadCategories(deps, 1);
  if (existing.data.length > 0) return false;
  for (const group of DEMO) {
    const cat = await catalog.createCategory(deps, group.category);
    for (const [name, price, stock, fulfillment] of group.items) {
      await catalog.createItem(deps, {
        category_id: cat.id, name, price_cents: price, currency: 'USD', stock, fulfillment: fulfillment ?? 'instant',
        description: `Demo ${group.category.toLowerCase()} item`, max_per_customer: name.includes('doorbuster') ? 1 : null,
      });
    }
  }
  return true;
}
