--
-- PostgreSQL database dump
--


-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: normlime_refuse_change(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.normlime_refuse_change() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
       BEGIN RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || ' rows are append-only'; END $$;


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: events; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.events (
    id integer NOT NULL,
    at timestamp with time zone NOT NULL,
    kind character varying(40) NOT NULL,
    study_id integer,
    participant_id integer,
    ip character varying(64),
    detail text NOT NULL
);


--
-- Name: events_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.events_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: events_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.events_id_seq OWNED BY public.events.id;


--
-- Name: items; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.items (
    id integer NOT NULL,
    participant_id integer NOT NULL,
    "position" smallint NOT NULL,
    is_check boolean NOT NULL,
    digit smallint NOT NULL,
    slots text NOT NULL
);


--
-- Name: items_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.items_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: items_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.items_id_seq OWNED BY public.items.id;


--
-- Name: participants; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.participants (
    id integer NOT NULL,
    study_id integer NOT NULL,
    public_id character varying(16) NOT NULL,
    token character varying(64) NOT NULL,
    worker_key character varying(64),
    raw_worker_id character varying(128),
    adapter character varying(32) NOT NULL,
    entry_nonce character varying(32) NOT NULL,
    assignment_id character varying(128),
    submit_to character varying(200),
    entry_params text NOT NULL,
    mode character varying(10) NOT NULL,
    seed bigint NOT NULL,
    survey_version smallint NOT NULL,
    bundle_sha256 character varying(64),
    created_at timestamp with time zone NOT NULL,
    started_at timestamp with time zone,
    completed_at timestamp with time zone,
    completion_code character varying(64)
);


--
-- Name: participants_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.participants_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: participants_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.participants_id_seq OWNED BY public.participants.id;


--
-- Name: responses; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.responses (
    id integer NOT NULL,
    participant_id integer NOT NULL,
    "position" smallint NOT NULL,
    choice smallint NOT NULL,
    chosen_method character varying(32) NOT NULL,
    chosen_role character varying(16) NOT NULL,
    shown_at timestamp with time zone,
    answered_at timestamp with time zone NOT NULL,
    response_ms integer
);


--
-- Name: responses_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.responses_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: responses_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.responses_id_seq OWNED BY public.responses.id;


--
-- Name: settings; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.settings (
    key character varying(64) NOT NULL,
    value text NOT NULL
);


--
-- Name: studies; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.studies (
    id integer NOT NULL,
    name character varying(100) NOT NULL,
    public_key character varying(32) NOT NULL,
    mode character varying(10) NOT NULL,
    secret character varying(64) NOT NULL,
    raw_worker_ids boolean NOT NULL,
    adapters text NOT NULL,
    active boolean NOT NULL,
    created_at timestamp with time zone NOT NULL
);


--
-- Name: studies_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.studies_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: studies_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.studies_id_seq OWNED BY public.studies.id;


--
-- Name: events id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.events ALTER COLUMN id SET DEFAULT nextval('public.events_id_seq'::regclass);


--
-- Name: items id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.items ALTER COLUMN id SET DEFAULT nextval('public.items_id_seq'::regclass);


--
-- Name: participants id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.participants ALTER COLUMN id SET DEFAULT nextval('public.participants_id_seq'::regclass);


--
-- Name: responses id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.responses ALTER COLUMN id SET DEFAULT nextval('public.responses_id_seq'::regclass);


--
-- Name: studies id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.studies ALTER COLUMN id SET DEFAULT nextval('public.studies_id_seq'::regclass);


--
-- Data for Name: events; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.events VALUES (1, '2026-12-01 13:41:00.625605+00', 'study_created', 1, NULL, NULL, '{"name": "study-4b15e2", "mode": "sandbox", "raw_worker_ids": false, "adapters": ["link", "mturk", "prolific"]}');
INSERT INTO public.events VALUES (2, '2026-12-01 13:41:00.670385+00', 'participant_created', 1, 1, '127.0.0.1', '{"adapter": "mturk", "assignment_id": "LEGACYASSIGN1", "param.hitId": "H1"}');
INSERT INTO public.events VALUES (3, '2026-12-01 13:41:00.675333+00', 'started', 1, 1, '127.0.0.1', '{}');


--
-- Data for Name: items; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.items VALUES (1, 1, 1, false, 6, '[["lime", 6, "option"], ["vargrad", 6, "option"], ["smoothgrad", 6, "option"], ["normlime", 6, "option"]]');
INSERT INTO public.items VALUES (2, 1, 2, false, 8, '[["vargrad", 8, "option"], ["lime", 8, "option"], ["smoothgrad", 8, "option"], ["normlime", 8, "option"]]');
INSERT INTO public.items VALUES (3, 1, 3, true, 0, '[["normlime", 6, "distractor"], ["normlime", 0, "correct"], ["normlime", 6, "distractor"], ["normlime", 6, "distractor"]]');
INSERT INTO public.items VALUES (4, 1, 4, false, 3, '[["vargrad", 3, "option"], ["normlime", 3, "option"], ["lime", 3, "option"], ["smoothgrad", 3, "option"]]');
INSERT INTO public.items VALUES (5, 1, 5, false, 7, '[["normlime", 7, "option"], ["smoothgrad", 7, "option"], ["vargrad", 7, "option"], ["lime", 7, "option"]]');
INSERT INTO public.items VALUES (6, 1, 6, false, 4, '[["lime", 4, "option"], ["smoothgrad", 4, "option"], ["normlime", 4, "option"], ["vargrad", 4, "option"]]');
INSERT INTO public.items VALUES (7, 1, 7, false, 9, '[["lime", 9, "option"], ["normlime", 9, "option"], ["vargrad", 9, "option"], ["smoothgrad", 9, "option"]]');
INSERT INTO public.items VALUES (8, 1, 8, false, 5, '[["normlime", 5, "option"], ["smoothgrad", 5, "option"], ["vargrad", 5, "option"], ["lime", 5, "option"]]');
INSERT INTO public.items VALUES (9, 1, 9, false, 3, '[["normlime", 3, "option"], ["lime", 3, "option"], ["vargrad", 3, "option"], ["smoothgrad", 3, "option"]]');
INSERT INTO public.items VALUES (10, 1, 10, false, 6, '[["smoothgrad", 6, "option"], ["lime", 6, "option"], ["vargrad", 6, "option"], ["normlime", 6, "option"]]');
INSERT INTO public.items VALUES (11, 1, 11, true, 9, '[["lime", 4, "distractor"], ["lime", 4, "distractor"], ["lime", 4, "distractor"], ["lime", 9, "correct"]]');
INSERT INTO public.items VALUES (12, 1, 12, false, 7, '[["vargrad", 7, "option"], ["smoothgrad", 7, "option"], ["lime", 7, "option"], ["normlime", 7, "option"]]');
INSERT INTO public.items VALUES (13, 1, 13, false, 5, '[["normlime", 5, "option"], ["vargrad", 5, "option"], ["lime", 5, "option"], ["smoothgrad", 5, "option"]]');
INSERT INTO public.items VALUES (14, 1, 14, true, 7, '[["normlime", 1, "distractor"], ["normlime", 1, "distractor"], ["normlime", 7, "correct"], ["normlime", 1, "distractor"]]');
INSERT INTO public.items VALUES (15, 1, 15, false, 2, '[["lime", 2, "option"], ["normlime", 2, "option"], ["vargrad", 2, "option"], ["smoothgrad", 2, "option"]]');
INSERT INTO public.items VALUES (16, 1, 16, false, 1, '[["smoothgrad", 1, "option"], ["lime", 1, "option"], ["normlime", 1, "option"], ["vargrad", 1, "option"]]');
INSERT INTO public.items VALUES (17, 1, 17, false, 1, '[["normlime", 1, "option"], ["lime", 1, "option"], ["smoothgrad", 1, "option"], ["vargrad", 1, "option"]]');
INSERT INTO public.items VALUES (18, 1, 18, false, 9, '[["smoothgrad", 9, "option"], ["lime", 9, "option"], ["normlime", 9, "option"], ["vargrad", 9, "option"]]');
INSERT INTO public.items VALUES (19, 1, 19, false, 2, '[["lime", 2, "option"], ["smoothgrad", 2, "option"], ["vargrad", 2, "option"], ["normlime", 2, "option"]]');
INSERT INTO public.items VALUES (20, 1, 20, false, 8, '[["lime", 8, "option"], ["smoothgrad", 8, "option"], ["normlime", 8, "option"], ["vargrad", 8, "option"]]');
INSERT INTO public.items VALUES (21, 1, 21, false, 4, '[["vargrad", 4, "option"], ["normlime", 4, "option"], ["lime", 4, "option"], ["smoothgrad", 4, "option"]]');
INSERT INTO public.items VALUES (22, 1, 22, true, 6, '[["lime", 5, "distractor"], ["lime", 5, "distractor"], ["lime", 5, "distractor"], ["lime", 6, "correct"]]');
INSERT INTO public.items VALUES (23, 1, 23, false, 0, '[["vargrad", 0, "option"], ["normlime", 0, "option"], ["smoothgrad", 0, "option"], ["lime", 0, "option"]]');
INSERT INTO public.items VALUES (24, 1, 24, false, 0, '[["vargrad", 0, "option"], ["normlime", 0, "option"], ["lime", 0, "option"], ["smoothgrad", 0, "option"]]');
INSERT INTO public.items VALUES (25, 1, 25, true, 5, '[["lime", 6, "distractor"], ["lime", 6, "distractor"], ["lime", 5, "correct"], ["lime", 6, "distractor"]]');


--
-- Data for Name: participants; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.participants VALUES (1, 1, 'b2f47e273809', 'fpibXVqw9B14XignRfP887OQV7Mg88JR', 'fb25783dd3c4af69ef59aa7f91c6144cb5e6f1ca22f8804b9e64d80196b1e13a', NULL, 'mturk', '1YnULVON61LAOr1FOxpIoQ', 'LEGACYASSIGN1', 'https://workersandbox.mturk.com', '{"hitId": "H1"}', 'sandbox', 3259734475789176235, 1, '4c77e8e14bf80d66601046d4de5a194374ca5deee40659e35e1553d9acc30ae9', '2026-12-01 13:41:00.666416+00', '2026-12-01 13:41:00.674328+00', NULL, NULL);


--
-- Data for Name: responses; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.responses VALUES (1, 1, 1, 1, 'lime', 'option', '2026-12-01 13:41:00.674328+00', '2026-12-01 13:41:00.685777+00', 11);
INSERT INTO public.responses VALUES (2, 1, 2, 1, 'vargrad', 'option', '2026-12-01 13:41:00.685777+00', '2026-12-01 13:41:00.689766+00', 3);
INSERT INTO public.responses VALUES (3, 1, 3, 1, 'normlime', 'distractor', '2026-12-01 13:41:00.689766+00', '2026-12-01 13:41:00.692249+00', 2);
INSERT INTO public.responses VALUES (4, 1, 4, 1, 'vargrad', 'option', '2026-12-01 13:41:00.692249+00', '2026-12-01 13:41:00.695191+00', 2);
INSERT INTO public.responses VALUES (5, 1, 5, 1, 'normlime', 'option', '2026-12-01 13:41:00.695191+00', '2026-12-01 13:41:00.697586+00', 2);
INSERT INTO public.responses VALUES (6, 1, 6, 1, 'lime', 'option', '2026-12-01 13:41:00.697586+00', '2026-12-01 13:41:00.699808+00', 2);
INSERT INTO public.responses VALUES (7, 1, 7, 1, 'lime', 'option', '2026-12-01 13:41:00.699808+00', '2026-12-01 13:41:00.701864+00', 2);
INSERT INTO public.responses VALUES (8, 1, 8, 1, 'normlime', 'option', '2026-12-01 13:41:00.701864+00', '2026-12-01 13:41:00.70405+00', 2);
INSERT INTO public.responses VALUES (9, 1, 9, 1, 'normlime', 'option', '2026-12-01 13:41:00.70405+00', '2026-12-01 13:41:00.706571+00', 2);
INSERT INTO public.responses VALUES (10, 1, 10, 1, 'smoothgrad', 'option', '2026-12-01 13:41:00.706571+00', '2026-12-01 13:41:00.709641+00', 3);


--
-- Data for Name: settings; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.settings VALUES ('secret_key', '6940534ddda09afaae83e2e2eef85c4477edcc99637f890982454f6e26b572ec');


--
-- Data for Name: studies; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.studies VALUES (1, 'study-4b15e2', '3TNhNtleFE1FMjhi', 'sandbox', '570d52292eea1813d6428887dadaefa5032fe520fb1d4f64909f913dd15426c9', false, '{"link": {"assignment_param": null, "completion_code": null, "completion_url": null, "kind": "redirect", "record_params": [], "submit_param": null, "worker_param": "pid", "worker_required": false}, "mturk": {"assignment_param": "assignmentId", "kind": "mturk", "record_params": ["hitId", "batch", "hit"], "submit_param": "turkSubmitTo", "worker_param": "workerId", "worker_required": true}, "prolific": {"assignment_param": "SESSION_ID", "completion_code": "PROLIFICCC", "completion_url": "https://app.prolific.com/submissions/complete?cc={code}", "kind": "redirect", "record_params": ["STUDY_ID"], "submit_param": null, "worker_param": "PROLIFIC_PID", "worker_required": true}}', true, '2026-12-01 13:41:00.624438+00');


--
-- Name: events_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.events_id_seq', 3, true);


--
-- Name: items_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.items_id_seq', 25, true);


--
-- Name: participants_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.participants_id_seq', 1, true);


--
-- Name: responses_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.responses_id_seq', 10, true);


--
-- Name: studies_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.studies_id_seq', 1, true);


--
-- Name: events events_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.events
    ADD CONSTRAINT events_pkey PRIMARY KEY (id);


--
-- Name: items items_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.items
    ADD CONSTRAINT items_pkey PRIMARY KEY (id);


--
-- Name: participants participants_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.participants
    ADD CONSTRAINT participants_pkey PRIMARY KEY (id);


--
-- Name: participants participants_public_id_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.participants
    ADD CONSTRAINT participants_public_id_key UNIQUE (public_id);


--
-- Name: participants participants_token_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.participants
    ADD CONSTRAINT participants_token_key UNIQUE (token);


--
-- Name: responses responses_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.responses
    ADD CONSTRAINT responses_pkey PRIMARY KEY (id);


--
-- Name: settings settings_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.settings
    ADD CONSTRAINT settings_pkey PRIMARY KEY (key);


--
-- Name: studies studies_name_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.studies
    ADD CONSTRAINT studies_name_key UNIQUE (name);


--
-- Name: studies studies_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.studies
    ADD CONSTRAINT studies_pkey PRIMARY KEY (id);


--
-- Name: studies studies_public_key_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.studies
    ADD CONSTRAINT studies_public_key_key UNIQUE (public_key);


--
-- Name: items uq_item_position; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.items
    ADD CONSTRAINT uq_item_position UNIQUE (participant_id, "position");


--
-- Name: participants uq_participant_entry; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.participants
    ADD CONSTRAINT uq_participant_entry UNIQUE (study_id, entry_nonce);


--
-- Name: participants uq_participant_worker; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.participants
    ADD CONSTRAINT uq_participant_worker UNIQUE (study_id, worker_key);


--
-- Name: responses uq_response_item; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.responses
    ADD CONSTRAINT uq_response_item UNIQUE (participant_id, "position");


--
-- Name: ix_events_kind_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_events_kind_at ON public.events USING btree (kind, at);


--
-- Name: ix_participants_study_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ix_participants_study_id ON public.participants USING btree (study_id);


--
-- Name: events events_append_only; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER events_append_only BEFORE DELETE OR UPDATE ON public.events FOR EACH ROW EXECUTE FUNCTION public.normlime_refuse_change();


--
-- Name: responses responses_write_once; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER responses_write_once BEFORE UPDATE ON public.responses FOR EACH ROW EXECUTE FUNCTION public.normlime_refuse_change();


--
-- Name: items items_participant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.items
    ADD CONSTRAINT items_participant_id_fkey FOREIGN KEY (participant_id) REFERENCES public.participants(id);


--
-- Name: participants participants_study_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.participants
    ADD CONSTRAINT participants_study_id_fkey FOREIGN KEY (study_id) REFERENCES public.studies(id);


--
-- Name: responses responses_participant_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.responses
    ADD CONSTRAINT responses_participant_id_fkey FOREIGN KEY (participant_id) REFERENCES public.participants(id);


--
-- PostgreSQL database dump complete
--


