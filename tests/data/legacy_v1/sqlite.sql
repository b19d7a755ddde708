BEGIN TRANSACTION;
CREATE TABLE events (
	id INTEGER NOT NULL, 
	at DATETIME NOT NULL, 
	kind VARCHAR(40) NOT NULL, 
	study_id INTEGER, 
	participant_id INTEGER, 
	ip VARCHAR(64), 
	detail TEXT NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "events" VALUES(1,'2026-12-01 13:41:00.281018','study_created',1,NULL,NULL,'{"name": "study-813b2c", "mode": "sandbox", "raw_worker_ids": false, "adapters": ["link", "mturk", "prolific"]}');
INSERT INTO "events" VALUES(2,'2026-12-01 13:41:00.368516','participant_created',1,1,'127.0.0.1','{"adapter": "mturk", "assignment_id": "LEGACYASSIGN1", "param.hitId": "H1"}');
INSERT INTO "events" VALUES(3,'2026-12-01 13:41:00.372934','started',1,1,'127.0.0.1','{}');
CREATE TABLE items (
	id INTEGER NOT NULL, 
	participant_id INTEGER NOT NULL, 
	position SMALLINT NOT NULL, 
	is_check BOOLEAN NOT NULL, 
	digit SMALLINT NOT NULL, 
	slots TEXT NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_item_position UNIQUE (participant_id, position), 
	FOREIGN KEY(participant_id) REFERENCES participants (id)
);
INSERT INTO "items" VALUES(1,1,1,0,2,'[["lime", 2, "option"], ["vargrad", 2, "option"], ["smoothgrad", 2, "option"], ["normlime", 2, "option"]]');
INSERT INTO "items" VALUES(2,1,2,1,0,'[["lime", 6, "distractor"], ["lime", 6, "distractor"], ["lime", 0, "correct"], ["lime", 6, "distractor"]]');
INSERT INTO "items" VALUES(3,1,3,0,8,'[["vargrad", 8, "option"], ["smoothgrad", 8, "option"], ["lime", 8, "option"], ["normlime", 8, "option"]]');
INSERT INTO "items" VALUES(4,1,4,0,1,'[["normlime", 1, "option"], ["vargrad", 1, "option"], ["smoothgrad", 1, "option"], ["lime", 1, "option"]]');
INSERT INTO "items" VALUES(5,1,5,0,2,'[["lime", 2, "option"], ["vargrad", 2, "option"], ["normlime", 2, "option"], ["smoothgrad", 2, "option"]]');
INSERT INTO "items" VALUES(6,1,6,0,6,'[["vargrad", 6, "option"], ["lime", 6, "option"], ["normlime", 6, "option"], ["smoothgrad", 6, "option"]]');
INSERT INTO "items" VALUES(7,1,7,0,7,'[["smoothgrad", 7, "option"], ["normlime", 7, "option"], ["lime", 7, "option"], ["vargrad", 7, "option"]]');
INSERT INTO "items" VALUES(8,1,8,0,0,'[["vargrad", 0, "option"], ["normlime", 0, "option"], ["smoothgrad", 0, "option"], ["lime", 0, "option"]]');
INSERT INTO "items" VALUES(9,1,9,0,8,'[["smoothgrad", 8, "option"], ["vargrad", 8, "option"], ["lime", 8, "option"], ["normlime", 8, "option"]]');
INSERT INTO "items" VALUES(10,1,10,0,7,'[["smoothgrad", 7, "option"], ["normlime", 7, "option"], ["vargrad", 7, "option"], ["lime", 7, "option"]]');
INSERT INTO "items" VALUES(11,1,11,0,5,'[["vargrad", 5, "option"], ["smoothgrad", 5, "option"], ["lime", 5, "option"], ["normlime", 5, "option"]]');
INSERT INTO "items" VALUES(12,1,12,0,0,'[["vargrad", 0, "option"], ["smoothgrad", 0, "option"], ["normlime", 0, "option"], ["lime", 0, "option"]]');
INSERT INTO "items" VALUES(13,1,13,0,3,'[["normlime", 3, "option"], ["smoothgrad", 3, "option"], ["vargrad", 3, "option"], ["lime", 3, "option"]]');
INSERT INTO "items" VALUES(14,1,14,0,9,'[["lime", 9, "option"], ["normlime", 9, "option"], ["vargrad", 9, "option"], ["smoothgrad", 9, "option"]]');
INSERT INTO "items" VALUES(15,1,15,0,4,'[["vargrad", 4, "option"], ["lime", 4, "option"], ["smoothgrad", 4, "option"], ["normlime", 4, "option"]]');
INSERT INTO "items" VALUES(16,1,16,1,3,'[["lime", 3, "correct"], ["lime", 8, "distractor"], ["lime", 8, "distractor"], ["lime", 8, "distractor"]]');
INSERT INTO "items" VALUES(17,1,17,1,4,'[["lime", 9, "distractor"], ["lime", 4, "correct"], ["lime", 9, "distractor"], ["lime", 9, "distractor"]]');
INSERT INTO "items" VALUES(18,1,18,0,4,'[["vargrad", 4, "option"], ["normlime", 4, "option"], ["lime", 4, "option"], ["smoothgrad", 4, "option"]]');
INSERT INTO "items" VALUES(19,1,19,0,1,'[["normlime", 1, "option"], ["smoothgrad", 1, "option"], ["lime", 1, "option"], ["vargrad", 1, "option"]]');
INSERT INTO "items" VALUES(20,1,20,1,8,'[["normlime", 3, "distractor"], ["normlime", 3, "distractor"], ["normlime", 8, "correct"], ["normlime", 3, "distractor"]]');
INSERT INTO "items" VALUES(21,1,21,0,3,'[["normlime", 3, "option"], ["vargrad", 3, "option"], ["smoothgrad", 3, "option"], ["lime", 3, "option"]]');
INSERT INTO "items" VALUES(22,1,22,0,9,'[["lime", 9, "option"], ["vargrad", 9, "option"], ["normlime", 9, "option"], ["smoothgrad", 9, "option"]]');
INSERT INTO "items" VALUES(23,1,23,1,5,'[["normlime", 6, "distractor"], ["normlime", 6, "distractor"], ["normlime", 6, "distractor"], ["normlime", 5, "correct"]]');
INSERT INTO "items" VALUES(24,1,24,0,5,'[["smoothgrad", 5, "option"], ["lime", 5, "option"], ["vargrad", 5, "option"], ["normlime", 5, "option"]]');
INSERT INTO "items" VALUES(25,1,25,0,6,'[["vargrad", 6, "option"], ["smoothgrad", 6, "option"], ["normlime", 6, "option"], ["lime", 6, "option"]]');
CREATE TABLE participants (
	id INTEGER NOT NULL, 
	study_id INTEGER NOT NULL, 
	public_id VARCHAR(16) NOT NULL, 
	token VARCHAR(64) NOT NULL, 
	worker_key VARCHAR(64), 
	raw_worker_id VARCHAR(128), 
	adapter VARCHAR(32) NOT NULL, 
	entry_nonce VARCHAR(32) NOT NULL, 
	assignment_id VARCHAR(128), 
	submit_to VARCHAR(200), 
	entry_params TEXT NOT NULL, 
	mode VARCHAR(10) NOT NULL, 
	seed BIGINT NOT NULL, 
	survey_version SMALLINT NOT NULL, 
	bundle_sha256 VARCHAR(64), 
	created_at DATETIME NOT NULL, 
	started_at DATETIME, 
	completed_at DATETIME, 
	completion_code VARCHAR(64), 
	PRIMARY KEY (id), 
	CONSTRAINT uq_participant_worker UNIQUE (study_id, worker_key), 
	CONSTRAINT uq_participant_entry UNIQUE (study_id, entry_nonce), 
	FOREIGN KEY(study_id) REFERENCES studies (id), 
	UNIQUE (public_id), 
	UNIQUE (token)
);
INSERT INTO "participants" VALUES(1,1,'5d4959236eda','InH_17iu7qgJcH6jtJOIbn4pTGwne3uJ','25fa58785ffd868875d07205f8d46914b4239019c72aef76b4a43e4e9f4253e1',NULL,'mturk','_zwknFLjh_qco83EelHnVw','LEGACYASSIGN1','https://workersandbox.mturk.com','{"hitId": "H1"}','sandbox',3703016437022936956,1,'4c77e8e14bf80d66601046d4de5a194374ca5deee40659e35e1553d9acc30ae9','2026-12-01 13:41:00.365565','2026-12-01 13:41:00.372108',NULL,NULL);
CREATE TABLE responses (
	id INTEGER NOT NULL, 
	participant_id INTEGER NOT NULL, 
	position SMALLINT NOT NULL, 
	choice SMALLINT NOT NULL, 
	chosen_method VARCHAR(32) NOT NULL, 
	chosen_role VARCHAR(16) NOT NULL, 
	shown_at DATETIME, 
	answered_at DATETIME NOT NULL, 
	response_ms INTEGER, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_response_item UNIQUE (participant_id, position), 
	FOREIGN KEY(participant_id) REFERENCES participants (id)
);
INSERT INTO "responses" VALUES(1,1,1,1,'lime','option','2026-12-01 13:41:00.372108','2026-12-01 13:41:00.383827',11);
INSERT INTO "responses" VALUES(2,1,2,1,'lime','distractor','2026-12-01 13:41:00.383827','2026-12-01 13:41:00.387352',3);
INSERT INTO "responses" VALUES(3,1,3,1,'vargrad','option','2026-12-01 13:41:00.387352','2026-12-01 13:41:00.389143',1);
INSERT INTO "responses" VALUES(4,1,4,1,'normlime','option','2026-12-01 13:41:00.389143','2026-12-01 13:41:00.390628',1);
INSERT INTO "responses" VALUES(5,1,5,1,'lime','option','2026-12-01 13:41:00.390628','2026-12-01 13:41:00.391834',1);
INSERT INTO "responses" VALUES(6,1,6,1,'vargrad','option','2026-12-01 13:41:00.391834','2026-12-01 13:41:00.393042',1);
INSERT INTO "responses" VALUES(7,1,7,1,'smoothgrad','option','2026-12-01 13:41:00.393042','2026-12-01 13:41:00.394279',1);
INSERT INTO "responses" VALUES(8,1,8,1,'vargrad','option','2026-12-01 13:41:00.394279','2026-12-01 13:41:00.395427',1);
INSERT INTO "responses" VALUES(9,1,9,1,'smoothgrad','option','2026-12-01 13:41:00.395427','2026-12-01 13:41:00.396675',1);
INSERT INTO "responses" VALUES(10,1,10,1,'smoothgrad','option','2026-12-01 13:41:00.396675','2026-12-01 13:41:00.397775',1);
CREATE TABLE settings (
	"key" VARCHAR(64) NOT NULL, 
	value TEXT NOT NULL, 
	PRIMARY KEY ("key")
);
INSERT INTO "settings" VALUES('secret_key','bfa33290964ecc6318f1fd9d3c34aa87109c6523f697a41961dd74e1b1adc8ee');
CREATE TABLE studies (
	id INTEGER NOT NULL, 
	name VARCHAR(100) NOT NULL, 
	public_key VARCHAR(32) NOT NULL, 
	mode VARCHAR(10) NOT NULL, 
	secret VARCHAR(64) NOT NULL, 
	raw_worker_ids BOOLEAN NOT NULL, 
	adapters TEXT NOT NULL, 
	active BOOLEAN NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (name), 
	UNIQUE (public_key)
);
INSERT INTO "studies" VALUES(1,'study-813b2c','XJHnmJK_kCGMDDkJ','sandbox','5dd7329451d9485370bf1101227b64a1cfe536dc7cda76836ef0be8177af38d3',0,'{"link": {"assignment_param": null, "completion_code": null, "completion_url": null, "kind": "redirect", "record_params": [], "submit_param": null, "worker_param": "pid", "worker_required": false}, "mturk": {"assignment_param": "assignmentId", "kind": "mturk", "record_params": ["hitId", "batch", "hit"], "submit_param": "turkSubmitTo", "worker_param": "workerId", "worker_required": true}, "prolific": {"assignment_param": "SESSION_ID", "completion_code": "PROLIFICCC", "completion_url": "https://app.prolific.com/submissions/complete?cc={code}", "kind": "redirect", "record_params": ["STUDY_ID"], "submit_param": null, "worker_param": "PROLIFIC_PID", "worker_required": true}}',1,'2026-12-01 13:41:00.278893');
CREATE INDEX ix_events_kind_at ON events (kind, at);
CREATE INDEX ix_participants_study_id ON participants (study_id);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER responses_no_update BEFORE UPDATE ON responses BEGIN SELECT RAISE(ABORT, 'responses are written once'); END;
COMMIT;
