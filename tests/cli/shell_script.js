// Golden transcript of the NexusLite shell: run with `nexuslite --db s.db shell --echo < shell_script.js`.
// Explicit _ids keep it deterministic; the error lines in the middle must not stop the script.
db.createCollection("users")
show collections
db.users.insertOne({_id: 1, name: "alice", age: 30, tags: ['admin', 'dev',], address: {city: "Paris", zip: '75001'}})
db.users.insertMany([
  {_id: 2, name: 'bob', age: 25, tags: ['dev']},
  {_id: 3, name: "Anna", age: 41, joined: ISODate("2021-06-01T08:00:00Z")},
  {_id: 4, name: "carol", age: 35, score: NumberLong("9007199254740993"), balance: NumberDecimal("10.25")},
  {_id: 5, name: "dave", age: 19, uid: UUID("123e4567-e89b-12d3-a456-426614174000"), // trailing comment
   profile: {langs: [{name: "C", years: 7}, {name: "Go", years: 2}], active: true}},
])
db.users.countDocuments({})
db.users.find({age: {$gt: 25}}, {name: 1}).sort({age: -1}).limit(5)
db.users.find({name: /^a/i}, {name: 1, age: 1}).sort({_id: 1})
db.users.find({}, {name: 1, _id: 0}).sort({name: 1}).skip(1).limit(2)
db.users.find({age: {$gte: 30}}).count()
db.users.find({"address.city": "Paris"}).pretty()
db.users.findOne({_id: 4})
db.users.findOne({name: "nobody"})
db.users.find({score: NumberLong("9007199254740993")}, {name: 1})
db.users.find({balance: {$gt: NumberDecimal("10")}}, {name: 1, balance: 1})
db.users.find({"profile.langs.name": "Go"}, {"profile.langs": 1})
db.users.find({joined: {$lt: new Date("2022-01-01")}}, {name: 1, joined: 1})
db.users.updateOne({_id: 2}, {$set: {age: 26, "address.city": "Lyon"}})
db.users.updateMany({age: {$lt: 30}}, {$inc: {age: 1}})
db.users.updateOne({_id: 9}, {$set: {name: "erin", age: 22}}, {upsert: true})
db.users.replaceOne({_id: 5}, {name: "dave", age: 20, retired: false})
db.users.find({_id: {$in: [2, 5, 9]}}).sort({_id: 1})
db.users.distinct("tags")
db.users.find(
  {$or: [{age: {$lt: 21}}, {tags: "admin"}]},
  {name: 1}
).sort({name: -1})
db.users.find({age: {$bad: 1}})
db.users.find({age: })
db.users.frobnicate()
db.users.insertOne({_id: 1, name: "dup"})
use other
db.users.find({age: {$gte: 20}}).sort({age: 1}).skip(1).limit(3).toArray()
db.users.deleteOne({_id: 9})
db.users.deleteMany({age: {$gt: 40}})
db.users.countDocuments()
db.nums.insertMany([{_id: 1}, {_id: 2}, {_id: 3}, {_id: 4}, {_id: 5}, {_id: 6}, {_id: 7},
  {_id: 8}, {_id: 9}, {_id: 10}, {_id: 11}, {_id: 12}, {_id: 13}, {_id: 14}, {_id: 15},
  {_id: 16}, {_id: 17}, {_id: 18}, {_id: 19}, {_id: 20}, {_id: 21}, {_id: 22}])
db.nums.find({}, {_id: 1})
it
db.nums.find({_id: {$gt: 100}})
show collections
db.nums.drop()
db.users.find().sort({_id: -1}).limit(1); db.users.countDocuments({age: 26})
exit
db.users.find()
